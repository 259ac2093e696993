"""One module per step; ALL_STEPS is the order the runner follows."""
