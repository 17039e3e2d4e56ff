"""What a problem is, shared by all three questions: cases, inputs, weighting schemes,
the BCE family's conversions, Hypothesis strategies and the float64 oracle."""
