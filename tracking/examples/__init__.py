"""Small, real pieces for the example pipelines (``dags/``, ``flows/``): a data set
made from a seed and a logistic regression in plain Python. Not part of the
tracking API; shared so that the Airflow and the Prefect examples train the
same model on the same data."""
