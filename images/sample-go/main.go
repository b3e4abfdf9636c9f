// A second sample app, in Go, that honours hostscale's bring-your-own-image contract (docs/byo-image.md):
// it listens on $PORT, answers GET /healthz, reads the database password from the file $DB_PASSWORD_FILE
// names (never from the environment), and on SIGTERM drains and exits within the stop grace period.
//
// The same binary is its own health probe (`sample-go probe`), so the image needs no shell, bash, curl or
// wget: it is built FROM scratch and holds nothing but this file.
package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"
)

type settings struct {
	port             int
	dbHost           string
	dbPort           int
	dbName           string
	dbUser           string
	dbPasswordFile   string
	shutdownGrace    time.Duration
	shutdownDeadline time.Duration
}

// intEnv and secondsEnv refuse a malformed value with an error that names the variable and the value, as the
// Python sample does (app/settings.py): a typo in the stack config must not start a replica on a default.
func intEnv(key string, fallback, low, high int) (int, error) {
	raw, ok := os.LookupEnv(key)
	if !ok {
		return fallback, nil
	}
	value, err := strconv.Atoi(raw)
	if err != nil {
		return 0, fmt.Errorf("%s must be an integer, got %q", key, raw)
	}
	if value < low || value > high {
		return 0, fmt.Errorf("%s must be between %d and %d, got %d", key, low, high, value)
	}
	return value, nil
}

func secondsEnv(key string, fallback, high float64) (time.Duration, error) {
	raw, ok := os.LookupEnv(key)
	if !ok {
		return time.Duration(fallback * float64(time.Second)), nil
	}
	value, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(value) { // NaN compares false with every bound
		return 0, fmt.Errorf("%s must be a number, got %q", key, raw)
	}
	if value < 0 || value > high {
		return 0, fmt.Errorf("%s must be between 0 and %g, got %g", key, high, value)
	}
	return time.Duration(value * float64(time.Second)), nil
}

func strEnv(key, fallback string) string {
	if value, ok := os.LookupEnv(key); ok && value != "" {
		return value
	}
	return fallback
}

func loadSettings() (settings, error) {
	if _, ok := os.LookupEnv("DB_PASSWORD"); ok {
		return settings{}, errors.New("DB_PASSWORD is not read: put the password in a file and set DB_PASSWORD_FILE")
	}
	var s settings
	var err error
	if s.port, err = intEnv("PORT", 8000, 1, 65535); err != nil {
		return s, err
	}
	if s.dbPort, err = intEnv("DB_PORT", 5432, 1, 65535); err != nil {
		return s, err
	}
	if s.shutdownGrace, err = secondsEnv("SHUTDOWN_GRACE_SECONDS", 2, 60); err != nil {
		return s, err
	}
	if s.shutdownDeadline, err = secondsEnv("SHUTDOWN_TIMEOUT_SECONDS", 10, 300); err != nil {
		return s, err
	}
	s.dbHost = strEnv("DB_HOST", "postgres")
	s.dbName = strEnv("DB_NAME", "app")
	s.dbUser = strEnv("DB_USER", "app")
	s.dbPasswordFile = strEnv("DB_PASSWORD_FILE", "/run/secrets/db_password")
	return s, nil
}

// passwordFileConnector reads the password file at every new connection, so a rotated secret is picked up
// without a restart, and the password never sits in a DSN string for the process's lifetime.
type passwordFileConnector struct{ s settings }

func (c passwordFileConnector) Connect(ctx context.Context) (driver.Conn, error) {
	raw, err := os.ReadFile(c.s.dbPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("reading the database password: %w", err)
	}
	dsn := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.s.dbUser, strings.TrimSpace(string(raw))),
		Host:     net.JoinHostPort(c.s.dbHost, strconv.Itoa(c.s.dbPort)),
		Path:     "/" + c.s.dbName,
		RawQuery: "sslmode=disable&connect_timeout=2",
	}
	connector, err := pq.NewConnector(dsn.String())
	if err != nil {
		return nil, err
	}
	return connector.Connect(ctx)
}

func (c passwordFileConnector) Driver() driver.Driver { return &pq.Driver{} }

func writeJSON(w http.ResponseWriter, status int, body map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func serve(s settings) error {
	db := sql.OpenDB(passwordFileConnector{s})
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(30 * time.Second)
	defer db.Close()
	hostname, _ := os.Hostname()
	var draining atomic.Bool

	mux := http.NewServeMux()
	// Liveness and the load balancer's readiness in one: 200 while serving, 503 once draining after SIGTERM.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// The one page that needs the database: proves the password file works.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var one int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			log.Printf("database: %v", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"served_by": hostname, "db": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"served_by": hostname, "db": "ok"})
	})

	server := &http.Server{
		Addr:              net.JoinHostPort("", strconv.Itoa(s.port)),
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	failed := make(chan error, 1)
	go func() { failed <- server.ListenAndServe() }()
	log.Printf("listening on :%d", s.port)

	select {
	case err := <-failed:
		return err
	case sig := <-stop:
		// Keep serving while the load balancer's check sees "draining" and takes the replica out, then give
		// in-flight requests a bounded time: both together stay under the service's stop grace period.
		log.Printf("%v: draining for %v, then stopping", sig, s.shutdownGrace)
		draining.Store(true)
		time.Sleep(s.shutdownGrace)
		ctx, cancel := context.WithTimeout(context.Background(), s.shutdownDeadline)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			return fmt.Errorf("stopping: %w", err)
		}
		log.Printf("stopped")
		return nil
	}
}

// probe is the image's HEALTHCHECK: GET /healthz on the loopback, exit 0 on 200. The engine bounds it by the
// check's timeout; the client's own bound only makes sure a probe never outlives a hung server for long.
func probe(s settings) error {
	client := http.Client{Timeout: 30 * time.Second}
	response, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.port))
	if err != nil {
		return err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz answered %d", response.StatusCode)
	}
	return nil
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	s, err := loadSettings()
	if err != nil {
		log.Print(err)
		os.Exit(2)
	}
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		if err := probe(s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 {
		log.Printf("unknown command %q: run without arguments to serve, or with 'probe'", os.Args[1])
		os.Exit(2)
	}
	if err := serve(s); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
		os.Exit(1)
	}
}
