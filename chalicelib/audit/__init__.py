"""The audit slice: who changed what (admin changes, withdrawals), with the caller's IAM ARN."""
