"""The files a report writes into its folder (report.md beside them): the only names it may replace."""

FIGURES = ("learning_curves.png", "best_train_vs_eval.png", "optimization_history.png", "intermediate_values.png",
           "param_importances.png", "pareto_front.png", "parallel_coordinates.png", "slice.png",
           "confusion_matrix.png")
