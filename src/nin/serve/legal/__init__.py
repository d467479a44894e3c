"""Legal texts served by ``/api/get_legal``."""
