// Package scfheaders holds what the two Tencent Cloud SCF builds (the web
// function and the event function) know about SCF's request headers: the
// headers that must never reach the AI vendor, and the client address that
// function URLs add.
package scfheaders

// StripHeaderPrefixes returns the header prefixes SCF adds: request, memory,
// timeout, namespace, account and role-credential headers (X-Scf-Secret-Id,
// X-Scf-Secret-Key, X-Scf-Session-Token), and x-scf-remote-addr.
// https://cloud.tencent.com/document/product/583/56124 (web function common
// request headers).
func StripHeaderPrefixes() []string {
	return []string{"X-Scf-"}
}

// StripHeaders returns the request headers SCF's API gateway adds.
func StripHeaders() []string {
	return []string{"X-Api-Requestid", "X-Client-Proto", "X-Client-Proto-Ver", "Endpoint-Timeout"}
}
