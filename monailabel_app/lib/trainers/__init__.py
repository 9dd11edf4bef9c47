"""Train tasks that retrain a model family on the annotators' labels and publish it for the infer tasks."""
