// Package deploy holds no code: it is where the deployment files live
// (compose/, k8s/, systemd/, Dockerfile) and where their tests run. The
// tests render and parse those files and check them against bodycam's own
// settings (cmd/bodycam/config.go), so a changed default, a renamed flag or
// a lost probe fails `make test`.
package deploy
