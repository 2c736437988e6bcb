package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/btda/btda/internal/inputfile"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the configuration file: btda's whole schema fits in a few KiB, so a
// larger file is a mistake (e.g. --config.file naming a database) and is not read.
const MaxFileSize = 1 << 20

// ErrEmpty is returned (wrapped) for a configuration file without a YAML document: more
// likely a file cut short by an editor or a failed copy than a wish for every default,
// and, on a reload, one that would drop every watched torrent.
var ErrEmpty = errors.New("configuration file is empty")

// readFile reads the configuration file at path: a regular file of at most MaxFileSize
// bytes, opened without blocking (inputfile), so a FIFO or /dev/zero is refused at once.
func readFile(path string) ([]byte, error) {
	data, err := inputfile.Read(path, MaxFileSize)
	var tooLarge *inputfile.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%w for a configuration file", err)
	}
	return data, err
}

// InputNote is one finding of CheckInputs about a watch-list input.
type InputNote struct {
	Key  string // "torrents.directory" or "torrents.magnet_file"
	Path string
	// Err is true for a path the file names explicitly that cannot be used; false for a
	// default path that is absent, which only means btda watches what it has.
	Err bool
	Msg string // one sentence naming the key and the path
}

func (n InputNote) String() string { return n.Msg }

// CheckInputs checks torrents.directory and torrents.magnet_file on disk without opening
// them (so a FIFO cannot block it): a path set in the file must exist and be a directory
// or a regular file; an absent default is reported as a note, not an error.
func (c *Config) CheckInputs() []InputNote {
	var notes []InputNote
	check := func(key, path string, explicit, wantDir bool) {
		if path == "" {
			return
		}
		st, err := os.Stat(path)
		n := InputNote{Key: key, Path: path, Err: true}
		switch {
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			n.Err = false
			n.Msg = fmt.Sprintf("%s: %s (the default) does not exist; btda watches the torrents it gets elsewhere", key, path)
		case errors.Is(err, fs.ErrNotExist):
			n.Msg = fmt.Sprintf("%s: %s does not exist", key, path)
		case err != nil:
			n.Msg = fmt.Sprintf("%s: %v", key, err)
		case wantDir && !st.IsDir():
			n.Msg = fmt.Sprintf("%s: %s is not a directory (it is %s)", key, path, inputfile.Kind(st.Mode()))
		case !wantDir && !st.Mode().IsRegular():
			n.Msg = fmt.Sprintf("%s: %s is not a regular file (it is %s)", key, path, inputfile.Kind(st.Mode()))
		default:
			return
		}
		notes = append(notes, n)
	}
	check("torrents.directory", c.Torrents.Directory, c.Torrents.explicitDir, true)
	check("torrents.magnet_file", c.Torrents.MagnetFile, c.Torrents.explicitMagnet, false)
	return notes
}

// scanDocument checks what the typed decoder cannot: that the file has a document, and
// that every boolean key holds an unquoted true or false (yaml.v3 would also take "yes",
// "on" or a quoted "true" for a bool). It also records which input paths the file sets.
func scanDocument(data []byte, c *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		if len(data) == 0 {
			return ErrEmpty
		}
		return fmt.Errorf("%w (only whitespace)", ErrEmpty)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return fmt.Errorf("%w (no YAML document, only whitespace or comments)", ErrEmpty)
	}
	var errs []error
	strictBools(doc.Content[0], reflect.TypeOf(Config{}), "", &errs)
	if root := doc.Content[0]; root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value != "torrents" || root.Content[i+1].Kind != yaml.MappingNode {
				continue
			}
			t := root.Content[i+1]
			for j := 0; j+1 < len(t.Content); j += 2 {
				switch t.Content[j].Value {
				case "directory":
					c.Torrents.explicitDir = true
				case "magnet_file":
					c.Torrents.explicitMagnet = true
				}
			}
		}
	}
	return errors.Join(errs...)
}

// strictBools walks n alongside the struct type t and reports boolean fields whose value
// is not a plain true/false.
func strictBools(n *yaml.Node, t reflect.Type, prefix string, errs *[]error) {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fieldByTag(t, k.Value)
		if !ok {
			continue // the typed decoder reports unknown keys
		}
		key := prefix + k.Value
		switch {
		case f.Type.Kind() == reflect.Bool:
			if v.Kind != yaml.ScalarNode || v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || v.ShortTag() != "!!bool" {
				*errs = append(*errs, fmt.Errorf("line %d: %s must be true or false (unquoted), got %s", v.Line, key, nodeText(v)))
			}
		case f.Type.Kind() == reflect.Struct:
			strictBools(v, f.Type, key+".", errs)
		}
	}
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func nodeText(v *yaml.Node) string {
	if v.Kind != yaml.ScalarNode {
		return "a " + map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list", yaml.AliasNode: "alias"}[v.Kind]
	}
	if v.Style&yaml.SingleQuotedStyle != 0 {
		return "'" + v.Value + "'"
	}
	if v.Style&yaml.DoubleQuotedStyle != 0 || v.ShortTag() == "!!str" {
		return fmt.Sprintf("%q", v.Value)
	}
	return v.Value
}
