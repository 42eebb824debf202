// Package scripts holds the release scripts (dist.sh); its tests run them and
// open what they produce.
package scripts
