package core

import (
	"fmt"
	"strconv"
	"strings"
)

// maxRetries bounds OXY_RETRIES: every retry is one more upstream call, and a
// retry storm is how peers got their keys banned.
const maxRetries = 10

// retries reads the retry settings into c.
func (p *parser) retries(c *Config) {
	v := p.get("OXY_RETRIES")
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxRetries {
		p.fail("OXY_RETRIES", v, fmt.Sprintf("must be a whole number 0-%d", maxRetries))
	}
	c.Retries = n
	v = p.get("OXY_RETRY_MAX_BODY")
	size, err := parseSize(v)
	if err != nil {
		p.fail("OXY_RETRY_MAX_BODY", v, err.Error())
	}
	c.RetryMaxBody = size
	c.KeyCooldown = p.duration("OXY_KEY_COOLDOWN", false)
}

// parseSize parses a byte count: digits, optionally followed by KiB, MiB or
// GiB (case-insensitive).
func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"b", 1}}
	num, mult := strings.ToLower(strings.TrimSpace(v)), int64(1)
	for _, u := range units {
		if s, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("must be a size such as 1048576, 512KiB or 1MiB")
	}
	return n * mult, nil
}

// realKeys reads a real-key setting: one key or several, comma-separated.
func (p *parser) realKeys(name string) []Secret {
	keys, problems := splitKeys(p.get(name))
	for _, problem := range problems {
		p.failSecret(name, problem)
	}
	return keys
}

// splitKeys splits a real-key setting (OXY_UPSTREAM_API_KEY and its per-route
// forms) into its keys: comma-separated, spaces around each ignored, in the
// order given, which numbers them #1, #2... Its problems name an entry by
// position (when there are several), never by value.
func splitKeys(v string) ([]Secret, []string) {
	var keys []Secret
	var problems []string
	seen := map[string]int{}
	entries := strings.Split(v, ",")
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		pos := i + 1
		switch {
		case entry == "":
			continue
		case !printable(entry) && len(entries) == 1:
			problems = append(problems, "must be printable ASCII without spaces")
		case !printable(entry):
			problems = append(problems, fmt.Sprintf("key %d: must be printable ASCII without spaces", pos))
		case seen[entry] != 0:
			problems = append(problems, fmt.Sprintf("key %d: same key as key %d", pos, seen[entry]))
		default:
			seen[entry] = pos
			keys = append(keys, Secret(entry))
		}
	}
	return keys, problems
}
