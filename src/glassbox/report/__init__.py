"""What people read: claims judged against chance, report.md sections, figures, the sweep summary and the explorer page."""
