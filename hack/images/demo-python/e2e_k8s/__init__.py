"""The Python demo app of the kubectl-dev test images (see demo.py)."""
