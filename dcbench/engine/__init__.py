"""Layer 4, the shared loops: one inference loop (`inference`), one resumable iteration
loop (`resumable`). Training, protocols and viz build on these instead of their own."""
