"""The controller room: a work queue of keys and the workers that reconcile them."""
