"""What people read: claims judged against chance, report.md sections, figures, the sweep and replicate
summaries, the intervention reports and the explorer page."""
