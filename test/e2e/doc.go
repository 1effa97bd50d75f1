// Package e2e holds Berth's end-to-end tests: scenarios a cluster operator
// would try, driven with client-go and kubectl against a real Kubernetes
// control plane and kubelet whose node runs every pod on Berth (package
// test/e2e/cluster). TestMain starts one cluster for the package and tears
// it down at the end, failing the run if anything was left on the host.
//
// Scenarios that need a Berth feature another issue is building are
// written now and detect whether the feature is there (the CRI call that
// would answer Unimplemented, the version kubelet cannot parse): only then
// do they skip, naming the issue they wait for, so they run for real as
// soon as it lands.
package e2e
