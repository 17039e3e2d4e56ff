"""Question 2, which is fastest and leanest? The cases benchmarks time, the traffic model,
the timed step, timers, the stability rule, passes and pooling."""
