"""Question 1, is this implementation correct? The properties and their tolerance rule,
the expectations contenders declare, the runner, and the check command's verdicts."""
