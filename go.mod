module github.com/sherdstore/sherd

go 1.26.8

require (
	github.com/klauspost/reedsolomon v1.14.2
	github.com/zeebo/xxh3 v1.1.0
)

require (
	github.com/klauspost/cpuid/v2 v2.4.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
