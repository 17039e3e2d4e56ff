"""Question 3, did a change make it slower or wrong? Loading runs, statistics, compare,
reports, tables and plots, and atomic writes."""
