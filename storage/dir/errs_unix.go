package dir

import "syscall"

// errNotDir: a key whose parent is a file (a/b when a is an object) is simply
// not there.
var errNotDir error = syscall.ENOTDIR
