package devpatch

// SplitTarget reads a workload argument as kubectl devpatch does: TYPE/NAME
// in one argument, or TYPE and NAME in two. Other plugins' commands that
// name a workload (version) use it with ResolveKind.
func SplitTarget(args []string) (typ, name string, err error) { return splitTarget(args) }
