"""Reading, checking and writing datasets: NIfTI helpers, dataset layouts, ingestion."""
