"""ddbench's built-in plugins: datasets, architectures, methods and tasks, each a plugin module
registered through the same hooks as a third party's."""
#: the built-in plugin modules, registered by the host exactly like third-party plugins
#: (one place lists them; the host knows this package, never a plugin in it)
BUILTIN_MODULES = (
    "ddbench_plugins.datasets",
    "ddbench_plugins.architectures",
    "ddbench_plugins.methods.none",
    "ddbench_plugins.methods.random",
    "ddbench_plugins.methods.kmeans",
    "ddbench_plugins.methods.krrst",
    "ddbench_plugins.methods.dsa",
    "ddbench_plugins.methods.dm",
    "ddbench_plugins.methods.gaussian",
    "ddbench_plugins.tasks.transfer",
    "ddbench_plugins.tasks.scratch",
    "ddbench_plugins.tasks.kd",
    "ddbench_plugins.tasks.arch_generalization",
)
