"""Adapters that run imsnb's schedules on schedulers teams already have (`imsnb.integrations.airflow`)."""
