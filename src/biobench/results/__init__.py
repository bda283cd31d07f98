"""Reading results back: comparison with BP and the paper, the check against references,
rendering for the terminal, exports and figures. No torch here."""
