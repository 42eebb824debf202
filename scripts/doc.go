// Package scripts holds the release and benchmark programs (dist, bench); its
// tests run scripts/dist and goreleaser on the same commit and open what they
// produce.
package scripts
