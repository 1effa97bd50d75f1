// Package images builds the OCI images that Berth's image, container and
// benchmark tests pull, reproducibly: the same calls give the same digests in
// every run on a machine (tar entries sorted, mtimes fixed at Epoch, owners
// and modes fixed, gzip/zstd output a function of the input). Only the
// Debian busybox package version, which provides the files, moves digests.
//
// Every image is built on Debian's dynamic busybox (Prepare installs it with
// apt-get when /bin/busybox is missing or static; busybox-static runs applets
// without exec): /bin/busybox, the libraries ldd lists and the dynamic
// loader, every applet as a hard link in /bin, /etc/passwd and /etc/group
// with root, nobody, berth (UserBerth, with supplementary groups) and tester,
// /tmp 1777, empty /proc /sys /dev.
//
//	Busybox()            one layer; Cmd ["sh"]
//	Configured()         Entrypoint, Cmd, Env, WorkingDir, User, StopSignal,
//	                     Labels, ExposedPorts, Volumes: ConfiguredConfig
//	Pause()              sleeps until SIGTERM, exits 0: a sandbox image
//	Layered()            whiteouts and an opaque directory: LayeredFiles,
//	                     LayeredAbsent
//	Mixed()              gzip, zstd and uncompressed layers in one image
//	Index()              OCI index / Docker manifest list: host busybox plus
//	                     linux/arm64 and linux/arm/v7 (IndexPlatforms)
//	ManyLayers(n)        n layers, layer i adds ManyLayersFile(i)
//	Hostile(kind)        a top layer attacking the unpacker (HostileKind)
//	Large(...)           seeded incompressible data for benchmarks;
//	LargeSibling(...)    the same lower layers, different upper ones
//
// Options pick the encoding: WithFormat(OCI|Docker) for manifest, index and
// config media types, WithCompression(Gzip|Zstd|Uncompressed) for layer
// blobs. The default is OCI with gzip layers. Variants share diff ids and
// file content; only digests differ.
//
// Each distinct image is built once per process (a sync.Once per image and
// per layer) and is immutable, so tests may share it freely. The builders
// panic if the machine cannot provide busybox; call Prepare to get that as
// an error instead. Push images with package test/registry.
package images
