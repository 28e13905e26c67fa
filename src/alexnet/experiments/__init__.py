"""The paper's checkable claims, reproduced with the project's own training engine."""
