"""Side-by-side benchmarks: each script runs a baseline and the tool on identical data and reports ratios."""
