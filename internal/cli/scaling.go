package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
)

// defaultAdminURL is where the admin API listens when neither --admin nor a configuration says.
const defaultAdminURL = "http://127.0.0.1:9900"

// scalingFlags are the flags every `shoal scaling` command shares.
type scalingFlags struct {
	configFlags
	admin  string
	token  string
	output string

	cfg       *config.Config // loaded once, by optionalConfig
	cfgLoaded bool
}

func (a *app) scalingCommand() *cobra.Command {
	var f scalingFlags
	cmd := &cobra.Command{
		Use:   "scaling",
		Short: "Operate a fleet run by `shoal up` through its admin API",
		Long: `Operate a fleet run by ` + "`shoal up`" + ` through its admin API: status, scale-up, scale-down,
restart, health-check, metrics and test-lb, plus generate-token to create the bearer token they need.

The admin API is --admin URL, else $SHOAL_ADMIN, else the admin.listen of the configuration (-f,
or shoal.yml in the current directory), else ` + defaultAdminURL + `. The token is --token, else
$SHOAL_TOKEN; prefer the variable, since other users of the machine can see command lines.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.file, "file", "f", "", "configuration file (default: shoal.yml, then rustform.yml, in the current directory)")
	pf.StringVar(&f.env, "env", "", "environment overlay to apply (default: $SHOAL_ENV)")
	pf.StringVar(&f.admin, "admin", "", "admin API URL (default: $SHOAL_ADMIN, else admin.listen of the configuration, else "+defaultAdminURL+")")
	pf.StringVar(&f.token, "token", "", "admin bearer token (default: $SHOAL_TOKEN)")
	pf.StringVarP(&f.output, "output", "o", "table", "output format: table, json or yaml")
	cmd.RegisterFlagCompletionFunc("output", fixedCompletion("table", "json", "yaml"))
	cmd.AddCommand(a.scalingStatusCommand(&f), a.scalingScaleCommand(&f, admin.DirectionUp),
		a.scalingScaleCommand(&f, admin.DirectionDown), a.scalingRestartCommand(&f), a.scalingHealthCheckCommand(&f),
		a.scalingMetricsCommand(&f), a.scalingTestLBCommand(&f), a.scalingTokenCommand(&f),
		a.scalingRevokeCommand(&f), a.scalingDecisionsCommand(&f), a.scalingSimulateCommand(&f))
	return cmd
}

// json reports whether -o asks for data for programs (json or yaml) rather than a table; it
// refuses formats it does not know.
func (f *scalingFlags) json() (bool, error) {
	switch f.output {
	case "table", "":
		return false, nil
	case "json", "yaml":
		return true, nil
	default:
		return false, usagef("-o %q is not a format; use -o table, -o json or -o yaml", f.output)
	}
}

// optionalConfig loads the configuration when -f names one or the current directory has one,
// and returns nil when neither.
func (a *app) optionalConfig(f *scalingFlags) (*config.Config, error) {
	if f.cfgLoaded {
		return f.cfg, nil
	}
	if f.file == "" {
		if _, err := config.Find("."); errors.Is(err, config.ErrNotFound) {
			f.cfgLoaded = true
			return nil, nil
		}
	}
	c, err := a.load(&f.configFlags)
	if err != nil {
		return nil, err
	}
	f.cfg, f.cfgLoaded = c, true
	return c, nil
}

// adminURL returns --admin, else the configuration's admin.listen, else the default.
func (a *app) adminURL(f *scalingFlags) (string, error) {
	if f.admin != "" {
		return f.admin, nil
	}
	if v, _ := a.getenv("SHOAL_ADMIN"); strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), nil
	}
	c, err := a.optionalConfig(f)
	if err != nil || c == nil {
		return defaultAdminURL, err
	}
	return dialURL(c.Admin.Listen)
}

// dialURL turns a listen address into an http URL that reaches it from this machine.
func dialURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("cannot reach the listen address %q: it is not host:port", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		// Go listens on both families for "::" and for an empty host; 127.0.0.1 reaches
		// both, and reads better in a URL than [::1].
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// adminToken returns --token, else $SHOAL_TOKEN.
func (a *app) adminToken(f *scalingFlags) string {
	if t := strings.TrimSpace(f.token); t != "" {
		return t
	}
	v, _ := a.getenv("SHOAL_TOKEN")
	return strings.TrimSpace(v)
}

// adminClient returns a client of the admin API with the token, which it requires.
func (a *app) adminClient(f *scalingFlags) (*admin.Client, error) {
	token := a.adminToken(f)
	if token == "" {
		return nil, usagef("no admin token: pass --token or set SHOAL_TOKEN (create one with `shoal scaling generate-token`)")
	}
	u, err := a.adminURL(f)
	if err != nil {
		return nil, err
	}
	return admin.NewClient(u, token, admin.WithHTTPClient(&http.Client{Transport: &http.Transport{
		// One or two calls per command: no connection is worth keeping.
		Proxy: http.ProxyFromEnvironment, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, DisableKeepAlives: true,
	}}))
}

// adminError turns a client error into one sentence.
func adminError(err error) error {
	var ue *admin.UnreachableError
	var ae *admin.APIError
	switch {
	case errors.As(err, &ue):
		return fmt.Errorf("no admin API at %s: is `shoal up` running?", ue.URL)
	case errors.As(err, &ae):
		return errors.New(ae.Error())
	default:
		return err
	}
}

// printJSON writes v indented.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// print writes v as -o asks: YAML for -o yaml, else JSON.
func (a *app) print(f *scalingFlags, v any) error {
	if f.output != "yaml" {
		return a.printJSON(v)
	}
	b, err := toYAML(v)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(b)
	return err
}

// toYAML renders v as YAML with its JSON field names, in the order of the JSON (the struct's
// order, so id comes first in an instance, not alphabetically as a map would put it).
func toYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	// JSON parses as flow collections and quoted strings; print block style, quoting only
	// what needs it.
	var plain func(n *yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&doc)
	var buf strings.Builder
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(buf.String()), nil
}

func (a *app) scalingStatusCommand(f *scalingFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the fleet: instances, their health and breakers, health checks, recent scaling events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			c, err := a.adminClient(f)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return adminError(err)
			}
			if asJSON {
				return a.print(f, st)
			}
			printStatus(a.stdout, st, time.Now())
			return nil
		},
	}
}

// printProgress writes one step of a scale or restart for people, on stderr.
func (a *app) printProgress(p admin.Progress) {
	fmt.Fprintf(a.stderr, "  %s  %-8s  %s\n", p.Instance, p.State, p.Message)
}

// printStatus writes st as tables for people.
func printStatus(out io.Writer, st admin.Status, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	service := st.Service
	if st.Environment != "" {
		service += " (environment " + st.Environment + ")"
	}
	auto := "off"
	if st.Autoscaling {
		auto = "on"
	}
	fmt.Fprintf(w, "service\t%s\n", service)
	fmt.Fprintf(w, "instances\t%d desired, %d ready (min %d, max %d); autoscaling %s\n", st.Desired, st.Ready, st.Min, st.Max, auto)
	printAutoscaling(w, st) // autoscale.go
	fmt.Fprintf(w, "proxy\t%s (%s)\n", orDash(st.ProxyURL), orDash(st.Algorithm))
	printDiscovery(w, st, now) // up_discovery.go
	if !st.Started.IsZero() {
		fmt.Fprintf(w, "up since\t%s (%s)\n", st.Started.Local().Format("2006-01-02 15:04:05"), roundDur(now.Sub(st.Started)))
	}

	fmt.Fprintln(w)
	if len(st.Instances) == 0 {
		fmt.Fprintln(w, "no instances")
	} else {
		fmt.Fprintln(w, "INSTANCE\tPID\tPORT\tSTATE\tHEALTH\tBREAKER\tIN-FLIGHT\tUPTIME\tRESTARTS\tLAST ERROR")
		for _, in := range st.Instances {
			uptime := in.Uptime
			if uptime == "" && !in.Started.IsZero() && in.State != admin.StateFailed && in.State != admin.StateStopped {
				uptime = roundDur(now.Sub(in.Started))
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", in.ID, in.PID, in.Port, in.State, orDash(in.Health),
				orDash(in.Breaker), in.InFlight, orDash(uptime), in.Restarts, orDash(oneLine(in.LastErr)))
		}
	}

	if len(st.Checks) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "CHECK\tTYPE\tCRITICAL\tENABLED\tSTATUS\tERROR")
		for _, c := range st.Checks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, orDash(c.Type), yesNo(c.Critical), yesNo(c.Enabled), orDash(c.Status), orDash(oneLine(c.Error)))
		}
	}

	if len(st.Events) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "EVENT TIME\tKIND\tFROM\tTO\tREASON")
		for i, e := range st.Events {
			if i == 10 {
				fmt.Fprintf(w, "… %d older (-o json shows them)\n", len(st.Events)-i)
				break
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.From, e.To, orDash(oneLine(e.Reason)))
		}
	}
	printRecentDecisions(w, st) // autoscale.go
}

func (a *app) scalingScaleCommand(f *scalingFlags, direction string) *cobra.Command {
	verb, other, below := "scale-up", "scale-down", "below"
	if direction == admin.DirectionDown {
		verb, other, below = "scale-down", "scale-up", "above"
	}
	var instances int
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " --instances N",
		Short: fmt.Sprintf("Bring the fleet to N instances, refusing a target %s the current count", below),
		Long: fmt.Sprintf(`Bring the fleet to N instances and wait until it is there: new instances ready, or removed ones
drained and stopped. N is the target count, not a step; a target %s the current count is refused
(use %s), and the current count is nothing to do. N must lie within
scaling.instances.min_instances..max_instances.`, below, other),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("instances") {
				return usagef("%s needs --instances N, the number of instances to run", verb)
			}
			if instances < 0 {
				return usagef("--instances must be 0 or more, not %d", instances)
			}
			c, err := a.adminClient(f)
			if err != nil {
				return err
			}
			if reason == "" {
				reason = fmt.Sprintf("shoal scaling %s --instances %d", verb, instances)
			}
			var opts []admin.CallOpt
			if !asJSON {
				opts = append(opts, admin.OnProgress(a.printProgress))
			}
			res, err := c.Scale(cmd.Context(), admin.ScaleRequest{Instances: instances, Reason: reason, Direction: direction}, opts...)
			var ae *admin.APIError
			if errors.As(err, &ae) && ae.Code == admin.CodeWrongDirection {
				return fmt.Errorf("%s with `shoal scaling %s --instances %d`", ae.Message, other, instances)
			}
			if err != nil {
				return adminError(err)
			}
			if asJSON {
				return a.print(f, res)
			}
			switch {
			case res.From == res.To:
				fmt.Fprintf(a.stdout, "the fleet already runs %d %s; nothing to do\n", res.To, plural(res.To, "instance", "instances"))
			case len(res.Started) > 0:
				fmt.Fprintf(a.stdout, "scaled from %d to %d instances; started %s\n", res.From, res.To, strings.Join(res.Started, ", "))
			case len(res.Stopped) > 0:
				fmt.Fprintf(a.stdout, "scaled from %d to %d instances; drained and stopped %s\n", res.From, res.To, strings.Join(res.Stopped, ", "))
			default:
				fmt.Fprintf(a.stdout, "scaled from %d to %d instances\n", res.From, res.To)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&instances, "instances", 0, "target number of instances (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "reason recorded in the scaling event (default: the command line)")
	return cmd
}

func (a *app) scalingRestartCommand(f *scalingFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Replace every instance, one at a time, each new one ready before the old one drains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			c, err := a.adminClient(f)
			if err != nil {
				return err
			}
			var opts []admin.CallOpt
			if !asJSON {
				fmt.Fprintln(a.stderr, "restarting every instance, one at a time: each replacement ready before the old one drains…")
				opts = append(opts, admin.OnProgress(a.printProgress))
			}
			if err := c.Restart(cmd.Context(), opts...); err != nil {
				return adminError(err)
			}
			if asJSON {
				return a.print(f, admin.RestartResult{Restarted: true})
			}
			fmt.Fprintln(a.stdout, "restarted every instance")
			return nil
		},
	}
}

func (a *app) scalingHealthCheckCommand(f *scalingFlags) *cobra.Command {
	var name string
	var enable, disable bool
	cmd := &cobra.Command{
		Use:   "health-check --name NAME --enable|--disable",
		Short: "Enable or disable one of health.checks by name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			if strings.TrimSpace(name) == "" {
				return usagef("health-check needs --name NAME, a check of health.checks")
			}
			if enable == disable {
				return usagef("health-check needs one of --enable or --disable")
			}
			c, err := a.adminClient(f)
			if err != nil {
				return err
			}
			cs, err := c.SetHealthCheck(cmd.Context(), name, enable)
			if err != nil {
				return adminError(err)
			}
			if asJSON {
				return a.print(f, cs)
			}
			state := "disabled"
			if cs.Enabled {
				state = "enabled"
			}
			fmt.Fprintf(a.stdout, "health check %q is %s", cs.Name, state)
			if cs.Status != "" {
				fmt.Fprintf(a.stdout, " (status %s)", cs.Status)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the health check, as in health.checks (required)")
	cmd.Flags().BoolVar(&enable, "enable", false, "enable the check")
	cmd.Flags().BoolVar(&disable, "disable", false, "disable the check")
	return cmd
}

func (a *app) scalingMetricsCommand(f *scalingFlags) *cobra.Command {
	var since string
	var points int
	cmd := &cobra.Command{
		Use:   "metrics [--since 1h]",
		Short: "Show the fleet's scaling metrics over time: min, average, max, last and a sparkline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			d, err := config.ParseDuration(since)
			if err != nil {
				return usagef("--since: %s", err)
			}
			if d <= 0 {
				return usagef("--since must be above zero, e.g. --since 1h")
			}
			if points < 1 || points > admin.MaxMetricsPoints {
				return usagef("--points must be from 1 to %d, not %d", admin.MaxMetricsPoints, points)
			}
			c, err := a.adminClient(f)
			if err != nil {
				return err
			}
			m, err := c.Metrics(cmd.Context(), d.D(), points)
			if err != nil {
				return adminError(err)
			}
			if asJSON {
				return a.print(f, m)
			}
			printMetrics(a.stdout, m, since)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "1h", "how far back to look, e.g. 15m, 6h, 7d")
	cmd.Flags().IntVar(&points, "points", 60, "samples per series, which is the sparkline's width")
	return cmd
}

// printMetrics writes one line per series: statistics and a sparkline.
func printMetrics(out io.Writer, m admin.MetricsReport, since string) {
	if len(m.Series) == 0 {
		fmt.Fprintf(out, "no metrics recorded in the last %s\n", since)
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "METRIC\tUNIT\tMIN\tAVG\tMAX\tLAST\tTREND (last %s)\n", since)
	for _, s := range m.Series {
		vals := make([]float64, len(s.Points))
		for i, p := range s.Points {
			vals[i] = p.Value
		}
		st, ok := summarize(vals)
		if !ok {
			fmt.Fprintf(w, "%s\t%s\t-\t-\t-\t-\t(no data)\n", s.Metric, orDash(s.Unit))
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Metric, orDash(s.Unit), num(st.min), num(st.avg), num(st.max), num(st.last), sparkline(vals))
	}
}

type stats struct{ min, avg, max, last float64 }

// summarize returns the statistics of the finite values; ok is false when there are none.
func summarize(vals []float64) (s stats, ok bool) {
	var sum float64
	n := 0
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if n == 0 || v < s.min {
			s.min = v
		}
		if n == 0 || v > s.max {
			s.max = v
		}
		sum += v
		s.last = v
		n++
	}
	if n == 0 {
		return stats{}, false
	}
	s.avg = sum / float64(n)
	return s, true
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws vals with eight block heights between their min and max; a value that is
// not finite is a gap, a flat series is a flat line (at the bottom when zero).
func sparkline(vals []float64) string {
	st, ok := summarize(vals)
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, v := range vals {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			b.WriteRune(' ')
		case st.max == st.min && v == 0:
			b.WriteRune(sparks[0])
		case st.max == st.min:
			b.WriteRune(sparks[3])
		default:
			b.WriteRune(sparks[int(math.Round((v-st.min)/(st.max-st.min)*float64(len(sparks)-1)))])
		}
	}
	return b.String()
}

// num formats a metric value with as many decimals as its size deserves.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e9:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (a *app) scalingTokenCommand(f *scalingFlags) *cobra.Command {
	var scopes, expiresIn, subject string
	cmd := &cobra.Command{
		Use:   `generate-token [--scopes "scaling:read,scaling:write"] [--expires-in 7d]`,
		Short: "Print a signed admin token (a JWT) for the scaling commands and the dashboard",
		Long: `Print a signed admin token: a JWT (HS256) with the given scopes that expires. scaling:read reads
the status and metrics; scaling:write scales, restarts and toggles health checks. Neither implies
the other: give both to a person. Without --scopes the token is read-only (scaling:read).

The signing key is $SHOAL_ADMIN_KEY (hex or base64, at least 32 bytes), else admin.key in the
configuration's admin.state_dir, created on first use with 0600 permissions. ` + "`shoal up`" + ` verifies
with the same key; revoke one token with revoke-token, or delete the key file to revoke them all. Use the token as
  export SHOAL_TOKEN=$(shoal scaling generate-token --scopes scaling:read,scaling:write)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			sc, err := admin.ParseScopes(scopes)
			if err != nil {
				return usagef("--scopes: %s", err)
			}
			d, err := config.ParseDuration(expiresIn)
			if err != nil {
				return usagef("--expires-in: %s", err)
			}
			if d <= 0 {
				return usagef("--expires-in must be above zero, e.g. --expires-in 7d")
			}
			key, err := a.signingKey(f)
			if err != nil {
				return err
			}
			token, claims, err := admin.IssueToken(key, admin.TokenOptions{Scopes: sc, TTL: d.D(), Subject: subject})
			if err != nil {
				return usagef("%s", err)
			}
			if asJSON {
				return a.print(f, struct {
					Token     string    `json:"token"`
					Subject   string    `json:"subject"`
					Scopes    []string  `json:"scopes"`
					IssuedAt  time.Time `json:"issued_at"`
					ExpiresAt time.Time `json:"expires_at"`
					ID        string    `json:"id"`
					KeyID     string    `json:"key_id"`
				}{token, claims.Subject, claims.Scope, claims.IssuedAt.UTC(), claims.ExpiresAt.UTC(), claims.ID, key.ID()})
			}
			fmt.Fprintln(a.stdout, token)
			fmt.Fprintf(a.stderr, "token for %s with %s, expires %s (id %s, key %s)\n", claims.Subject,
				strings.Join(claims.Scope, " and "), claims.ExpiresAt.Local().Format("2006-01-02 15:04 MST"), claims.ID, key.ID())
			if !slices.Contains(claims.Scope, admin.ScopeWrite) {
				fmt.Fprintf(a.stderr, "this token is read-only: it shows the status and metrics but cannot scale, restart or switch checks;\n"+
					"for that: shoal scaling generate-token --scopes %s,%s\n", admin.ScopeRead, admin.ScopeWrite)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&scopes, "scopes", admin.ScopeRead, "comma-separated scopes: "+strings.Join(admin.KnownScopes(), ", ")+"; the default is read-only")
	cmd.RegisterFlagCompletionFunc("scopes", fixedCompletion(admin.ScopeRead, admin.ScopeRead+","+admin.ScopeWrite, admin.ScopeWrite))
	cmd.Flags().StringVar(&expiresIn, "expires-in", "7d", "lifetime, e.g. 12h, 7d, 90d")
	cmd.Flags().StringVar(&subject, "subject", admin.DefaultSubject, "sub claim: who or what the token is for, shown in the admin log")
	return cmd
}

func (a *app) scalingRevokeCommand(f *scalingFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   `revoke-token ID [--reason TEXT]`,
		Short: "Revoke one admin token by its ID, leaving the others valid",
		Long: `Add a token's ID to the revocation list in the configuration's admin.state_dir
(` + admin.RevokedFileName + `, next to the signing key). ` + "`shoal up`" + ` refuses the token within a second, with
401 revoked_token; every other token stays valid. generate-token prints each token's ID ("id …";
with -o json, "id"). To revoke every token at once, delete the signing key instead.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("revoke-token takes one token ID, e.g. `shoal scaling revoke-token -f shoal.yml 3f9c…`; generate-token prints it")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.optionalConfig(f)
			if err != nil {
				return err
			}
			if c == nil {
				return usagef("revoke-token needs the configuration: pass -f FILE (the revocation list is kept in its admin.state_dir)")
			}
			dir := admin.StateDir(c)
			added, err := admin.RevokeToken(dir, args[0], reason, time.Now())
			if errors.Is(err, admin.ErrBadTokenID) {
				return usagef("%s", err)
			}
			if err != nil {
				return err
			}
			if !added {
				fmt.Fprintf(a.stderr, "token %s was already revoked (%s)\n", args[0], filepath.Join(dir, admin.RevokedFileName))
				return nil
			}
			fmt.Fprintf(a.stderr, "revoked token %s: shoal up refuses it within a second (%s)\n", args[0], filepath.Join(dir, admin.RevokedFileName))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept as a comment in the revocation list")
	return cmd
}

// signingKey returns SHOAL_ADMIN_KEY, else the key in the configuration's state directory,
// creating it (and saying so) on first use.
func (a *app) signingKey(f *scalingFlags) (admin.Key, error) {
	if v, _ := a.getenv(admin.KeyEnv); strings.TrimSpace(v) != "" {
		return admin.LoadKey("", a.getenv)
	}
	c, err := a.optionalConfig(f)
	if err != nil {
		return admin.Key{}, err
	}
	if c == nil {
		return admin.Key{}, fmt.Errorf("no signing key: pass -f FILE (the key is kept in its admin.state_dir) or set %s", admin.KeyEnv)
	}
	dir := admin.StateDir(c)
	_, statErr := os.Stat(filepath.Join(dir, admin.KeyFileName))
	key, err := admin.LoadKey(dir, a.getenv)
	if err != nil {
		return admin.Key{}, err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		fmt.Fprintf(a.stderr, "created the admin signing key %s; keep it secret, `shoal up` verifies tokens with it\n", key.Source())
	}
	return key, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// oneLine keeps a message on one table row.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		return string(r[:59]) + "…"
	}
	return s
}

// roundDur rounds d for people: seconds below an hour, minutes above.
func roundDur(d time.Duration) string {
	if d >= time.Hour {
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}
