// Package registry runs container registries on 127.0.0.1 for tests.
//
// Start runs an in-process OCI distribution registry (go-containerregistry's
// pkg/registry, blobs in memory) behind middleware that can
//
//   - require HTTP Basic credentials (WithBasicAuth) or bearer tokens from the
//     Docker token flow (WithBearerAuth; token server at /token),
//   - hand out tokens to anyone, as Docker Hub does (WithBearerAuth("", "")),
//   - serve HTTPS with a fresh CA written to a temp dir (WithTLS, CAFile),
//   - redirect blob GETs to a second "blob host" (WithBlobRedirect), as
//     registries backed by object storage do,
//   - count authorized GETs per blob digest and per manifest reference
//     (BlobFetches, ManifestFetches), so tests can prove deduplication and
//     caching,
//   - misbehave on chosen blobs and manifests (InjectFault): corrupt bytes,
//     a body cut half way, 500, 404, a request that hangs, a body that
//     stalls, so tests can prove a pull fails cleanly.
//
// Images from package test/images are pushed with Push and PushIndex through
// a side door that skips auth, counting and faults:
//
//	r := registry.Start(t, registry.WithBasicAuth("alice", "s3cret"))
//	ref := r.Push(t, "library/busybox:latest", images.Busybox())
//	// ref == r.Host() + "/library/busybox:latest"; pull it with r.Credentials()
//	r.InjectFault(layerDigest, registry.FaultTruncate, 1)
//
// StartDistribution runs Debian's docker-registry (the CNCF distribution
// registry) as a process with filesystem storage in a temp dir, optionally
// with htpasswd Basic auth or token auth backed by this package's token
// server, for tests that want a registry implementation not written by us.
//
// Nothing here listens beyond loopback, and everything stops at test cleanup.
package registry
