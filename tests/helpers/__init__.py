"""Code the test modules share: they import it from here, never from each other or from conftest.py.

cli: the checkout's paths, sweeps written for a test, the ``ablation`` command run in or out of process;
store: run records and stores of them; figures: reading an effects chart; tables: reading a markdown table;
browser: a served dashboard and the Chromium that opens it; detector: a detector built from a config;
mmdet_tool: a script that runs mmdet's own tools (run as a file, not imported).
"""
