"""The numbers and figures behind the dashboard, from store frames (pandas, numpy, Plotly)."""
