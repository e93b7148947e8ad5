package config

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Redacted is what a secret is printed as.
const Redacted = "[redacted]"

// IsSecretName reports whether an environment variable or query parameter name looks like
// it holds a secret (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL…): such values are redacted when
// printed and never written into generated files.
func IsSecretName(name string) bool { return secretKey.MatchString(name) }

var secretKey = regexp.MustCompile(`(?i)(secret|token|passw(or)?d|credential|api_?key|private_?key|^key$|_key$)`)

// Redacted returns a deep copy of c that is safe to print or log:
//   - every string value that came from ${VAR} interpolation is shown as it was written (the
//     variable's name, not its value), with any literal password in it masked: a DSN or a token
//     taken from the environment is never printed, whatever its name;
//   - fields tagged secret:"true" are replaced;
//   - in every string that is a URL, the password of its userinfo (or the whole userinfo when
//     it has no password: a token used as the user name) and every query parameter whose name
//     looks secret (password, token, key…) are masked;
//   - app.env values whose names look like secrets are replaced.
func (c *Config) Redacted() *Config {
	b, err := json.Marshal(c)
	if err != nil {
		// Config holds only strings, numbers, booleans, maps and slices; Marshal cannot fail.
		panic("config: marshalling a Config: " + err.Error())
	}
	cp := &Config{}
	if err := json.Unmarshal(b, cp); err != nil {
		panic("config: copying a Config: " + err.Error())
	}
	cp.Meta = c.Meta
	redactValue(reflect.ValueOf(cp).Elem())
	for k := range cp.App.Env {
		if secretKey.MatchString(k) {
			cp.App.Env[k] = Redacted
		}
	}
	for path, tmpl := range c.Meta.Templates {
		setStringAt(reflect.ValueOf(cp).Elem(), path, redactURL(tmpl))
	}
	return cp
}

// setStringAt sets the string at a dotted path ("app.env.DSN", "scaling.x.instances[0].url")
// of v, when there is one there; other kinds are left as they are.
func setStringAt(v reflect.Value, path, value string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if path == "" {
		if v.Kind() == reflect.String && v.CanSet() && v.String() != Redacted {
			v.SetString(value) // a secret field stays [redacted]
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		name, rest, _ := strings.Cut(path, ".")
		index := ""
		if i := strings.IndexByte(name, '['); i >= 0 {
			name, index = name[:i], name[i:]
			if rest != "" {
				rest = index + "." + rest
			} else {
				rest = index
			}
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if tag == name && t.Field(i).IsExported() {
				setStringAt(v.Field(i), strings.TrimPrefix(rest, "."), value)
				return
			}
		}
	case reflect.Slice:
		if !strings.HasPrefix(path, "[") {
			return
		}
		end := strings.IndexByte(path, ']')
		if end < 0 {
			return
		}
		i, err := strconv.Atoi(path[1:end])
		if err != nil || i < 0 || i >= v.Len() {
			return
		}
		setStringAt(v.Index(i), strings.TrimPrefix(path[end+1:], "."), value)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			return // the configuration's maps of secrets are string to string (app.env)
		}
		k := reflect.ValueOf(path).Convert(v.Type().Key())
		if e := v.MapIndex(k); e.IsValid() && e.String() != Redacted {
			v.SetMapIndex(k, reflect.ValueOf(value).Convert(v.Type().Elem()))
		}
	}
}

func redactValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			redactValue(v.Elem())
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			redactValue(e)
			v.SetMapIndex(k, e)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			redactValue(v.Index(i))
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("yaml") == "-" {
				continue
			}
			fv := v.Field(i)
			switch f.Tag.Get("secret") {
			case "true":
				if fv.Kind() == reflect.String && fv.String() != "" {
					fv.SetString(Redacted)
				}
			case "url":
				switch fv.Kind() {
				case reflect.String:
					fv.SetString(redactURL(fv.String()))
				case reflect.Slice:
					for j := 0; j < fv.Len(); j++ {
						fv.Index(j).SetString(redactURL(fv.Index(j).String()))
					}
				}
			default:
				redactValue(fv)
			}
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(redactURL(v.String())) // any string may be a URL with a password in it
		}
	}
}

// RedactURL returns raw with the password of its userinfo (or a user name alone, often a token)
// and its secret-looking query parameters masked, for errors and logs that name a URL from
// outside. A value that is not a URL is returned unchanged.
func RedactURL(raw string) string { return redactURL(raw) }

// redactURL masks the password of a URL (and of each URL of a comma-separated list), keeping
// the rest readable. A value that is not a URL is returned unchanged unless it carries
// user:password@, which is masked as well.
func redactURL(raw string) string {
	if strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, p := range parts {
			parts[i] = redactURL(p)
		}
		return strings.Join(parts, ",")
	}
	u, err := url.Parse(raw)
	if err == nil && u.Scheme != "" && (u.User != nil || u.RawQuery != "") {
		changed := false
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx") // a user name alone is often a token
			}
			changed = true
		}
		q := u.Query()
		for k := range q {
			if secretKey.MatchString(k) {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if !changed {
			return raw
		}
		u.RawQuery = q.Encode()
		return strings.ReplaceAll(u.String(), "xxxxx", Redacted)
	}
	if err == nil {
		return raw
	}
	// Unparseable: mask anything between :// and @ after the first colon.
	if at := strings.LastIndex(raw, "@"); at > 0 {
		if scheme := strings.Index(raw, "://"); scheme >= 0 && scheme < at {
			userinfo := raw[scheme+3 : at]
			if colon := strings.Index(userinfo, ":"); colon >= 0 {
				return raw[:scheme+3] + userinfo[:colon+1] + Redacted + raw[at:]
			}
		}
	}
	return raw
}
