"""Problem sets with ground truth."""
