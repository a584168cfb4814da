"""Pictures: detections drawn on photos, plots of runs and datasets, HTML reports."""
