"""Deployment: CloudFormation generated from the code's own definitions (docs/how-to/deploy.md).

- `template`: tables and queues (`data_resources`, also used by the local stack) and the merge template.
- `lambdas`: the functions Chalice deploys, read from `app.py` and `.chalice/config.json`.
- `functions`: what each function may touch (the one declaration IAM is generated from); `iam`: the roles.
- `alarms`: the alarm topic and alarms. `package`: `make package`'s build and checks.
- `provision`: the local stack's tables/queues.
"""
