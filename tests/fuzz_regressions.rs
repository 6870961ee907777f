//! Regression tests from fuzzing findings (placeholder until the first finding).
