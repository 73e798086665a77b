import sresr_this_module_does_not_exist  # noqa: F401  (the plugin is broken on purpose)
