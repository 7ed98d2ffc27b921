// The helpers' arguments: portable, so that they are built and tested on
// every GOOS; the helpers themselves (helper.go, shell.go) need Linux.

package approc

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// Identity is who a helper becomes.
type Identity struct {
	UID, GID int
	Groups   []int
}

// HelperArgs are the arguments of the sftp helper for p.
func HelperArgs(p *Proc) []string {
	return append([]string{HelperSFTP}, appArgs(p)...)
}

// appArgs are the flags that tell a helper which app to enter, as whom.
func appArgs(p *Proc) []string {
	groups := make([]string, 0, len(p.Groups))
	for _, g := range p.Groups {
		groups = append(groups, strconv.Itoa(g))
	}
	return []string{"--pid", strconv.Itoa(p.PID), "--uid", strconv.Itoa(p.UID), "--gid", strconv.Itoa(p.GID),
		"--groups", strings.Join(groups, ","), "--cwd", p.Cwd}
}

// appTarget is what appArgs tells a helper.
type appTarget struct {
	pid int
	cwd string
	id  Identity
}

// appFlags declares appArgs's flags on fs; the returned function reads them
// after fs.Parse and checks that pid, uid and gid were given.
func appFlags(fs *flag.FlagSet) func() (appTarget, error) {
	pid := fs.Int("pid", 0, "the app's pid")
	uid := fs.Int("uid", -1, "the app's uid")
	gid := fs.Int("gid", -1, "the app's gid")
	groups := fs.String("groups", "", "the app's supplementary groups, comma-separated")
	cwd := fs.String("cwd", "/", "the working directory inside the app's root")
	return func() (appTarget, error) {
		if *pid <= 0 || *uid < 0 || *gid < 0 {
			return appTarget{}, fmt.Errorf("--pid, --uid and --gid are required")
		}
		t := appTarget{pid: *pid, cwd: *cwd, id: Identity{UID: *uid, GID: *gid}}
		for _, g := range strings.Split(*groups, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(g)); err == nil {
				t.id.Groups = append(t.id.Groups, n)
			}
		}
		return t, nil
	}
}
