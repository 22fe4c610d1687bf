"""The datasets: checks of a sweep's COCO-format dataset, and the synthetic shapes dataset."""
