"""Task persistence (store) and execution (worker)."""
