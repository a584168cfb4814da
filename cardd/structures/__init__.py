"""What a result is, without torch: class sets and palettes, detections, images."""
