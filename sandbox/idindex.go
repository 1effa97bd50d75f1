package sandbox

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// idIndex resolves full IDs from unique prefixes, as crictl users type them.
// It is not safe for concurrent use; the Manager's lock guards it.
type idIndex map[string]struct{}

func (x idIndex) add(id string)    { x[id] = struct{}{} }
func (x idIndex) remove(id string) { delete(x, id) }

// resolve returns the one ID that is prefix or starts with it. kind names
// the object in errors ("pod sandbox", "container").
func (x idIndex) resolve(kind, prefix string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("%s ID is empty: %w", kind, errdefs.ErrInvalidArgument)
	}
	if _, ok := x[prefix]; ok {
		return prefix, nil
	}
	var found []string
	for id := range x {
		if strings.HasPrefix(id, prefix) {
			found = append(found, id)
			if len(found) > 1 {
				return "", fmt.Errorf("%s ID prefix %q is ambiguous: it matches %s and %s: %w",
					kind, prefix, found[0], found[1], errdefs.ErrInvalidArgument)
			}
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%s %q: %w", kind, prefix, errdefs.ErrNotFound)
	}
	return found[0], nil
}
