"""The student-training math: losses, EMA, learning-rate schedule, distillation targets of a batch."""
