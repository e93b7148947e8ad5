package config

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strings"
)

// Redacted is what a secret is printed as.
const Redacted = "[redacted]"

// IsSecretName reports whether an environment variable or query parameter name looks like
// it holds a secret (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL…): such values are redacted when
// printed and never written into generated files.
func IsSecretName(name string) bool { return secretKey.MatchString(name) }

var secretKey = regexp.MustCompile(`(?i)(secret|token|passw(or)?d|credential|api_?key|private_?key|^key$|_key$)`)

// Redacted returns a deep copy of c that is safe to print: fields tagged secret:"true" are
// replaced, passwords in URLs (database.url, messaging URLs, check URLs) are masked, and
// app.env values whose names look like secrets are replaced.
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
	return cp
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
	}
}

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
	if err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return strings.Replace(u.String(), "xxxxx", Redacted, 1)
		}
		return raw
	}
	if err == nil {
		q := u.Query()
		changed := false
		for k := range q {
			if secretKey.MatchString(k) {
				q.Set(k, Redacted)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
			return u.String()
		}
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
