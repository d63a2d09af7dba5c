"""Moving versions in: from another registry (``pmr copy``) and from MLflow (``pmr import-mlflow``)."""
