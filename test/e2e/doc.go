// Package e2e holds Berth's end-to-end tests: scenarios a cluster operator
// would try, driven with client-go and kubectl against a real Kubernetes
// control plane and kubelet whose node runs every pod on Berth (package
// test/e2e/cluster). TestMain starts one cluster for the package and tears
// it down at the end, failing the run if anything was left on the host.
//
// A scenario that needs a Berth feature another issue is building is
// written now and detects whether the feature is there through the CRI
// (today: issue 14's seccomp and user-namespace scenarios): only then does
// it skip, naming the issue it waits for, so it runs for real as soon as
// the feature lands. The streaming scenarios (issue 15) and the runtime
// version (issue 12) have landed and are required: a refused call fails.
package e2e
