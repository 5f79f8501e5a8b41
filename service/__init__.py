"""Job-service core shared by the API and the worker: settings, job store, storage, webhooks."""
