"""Read side: pure folds over the event log, their tables, and the runner."""
