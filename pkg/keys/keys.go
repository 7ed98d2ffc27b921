// Package keys holds the SSH keys that the kubectl-dev plugins and the
// devagent share: the user's ed25519 key pair, created once under the folder
// of the kubeconfig in use (e.g. ~/.kube/kubectl-dev/id_ed25519{,.pub}), the
// agent's per-workload host key, and the authorized_keys file that lists the
// developers allowed in. devpatch, devssh and devsync all use it.
package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	// DirName is the folder, beside the kubeconfig, that holds the user's keys.
	DirName = "kubectl-dev"
	// PrivateKeyFile is the user's private key inside Dir.
	PrivateKeyFile = "id_ed25519"
	// PublicKeyFile is the user's public key inside Dir.
	PublicKeyFile = "id_ed25519.pub"

	// Keys of the devagent Secret (and files in the agent's key folder).
	HostKeyFile        = "ssh_host_ed25519_key"
	HostPublicKeyFile  = "ssh_host_ed25519_key.pub"
	AuthorizedKeysFile = "authorized_keys"
)

// Dir returns the folder of the user's keys: "kubectl-dev" beside the
// kubeconfig file in use (kubeconfig may be empty), else ~/.kube/kubectl-dev.
func Dir(kubeconfig, home string) string {
	if kubeconfig != "" {
		return filepath.Join(filepath.Dir(kubeconfig), DirName)
	}
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".kube", DirName)
}

// Identity is a user's public key in authorized_keys form, and where it came from.
type Identity struct {
	// PublicKey is one authorized_keys line, without options.
	PublicKey string
	// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l prints it.
	Fingerprint string
	// Path is the private key file (or the public key file when only that exists).
	Path string
	// Created is true when this call created the key pair.
	Created bool
}

// LoadOrCreate returns the user's key pair in dir, creating it (dir 0700,
// private key 0600, public key 0644) when it does not exist yet.
func LoadOrCreate(dir, comment string) (*Identity, error) {
	priv := filepath.Join(dir, PrivateKeyFile)
	if _, err := os.Stat(priv); err == nil {
		return LoadIdentity(priv)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the key folder: %w", err)
	}
	privPEM, pubLine, err := NewEd25519(comment)
	if err != nil {
		return nil, err
	}
	// O_EXCL: when two plugins race, one wins and the other reads its key.
	f, err := os.OpenFile(priv, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadIdentity(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", priv, err)
	}
	if _, err := f.Write(privPEM); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", priv, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(priv+".pub", []byte(pubLine+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s.pub: %w", priv, err)
	}
	id, err := LoadIdentity(priv)
	if err != nil {
		return nil, err
	}
	id.Created = true
	return id, nil
}

// LoadIdentity reads the public key of an identity file given as ssh -i takes
// it: a private key (its public half is read from FILE.pub when present, else
// derived, which needs an unencrypted key) or a public key file.
func LoadIdentity(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	if pk, comment, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
		return newIdentity(pk, comment, path), nil
	}
	if pubData, err := os.ReadFile(path + ".pub"); err == nil {
		pk, comment, _, _, err := ssh.ParseAuthorizedKey(pubData)
		if err != nil {
			return nil, fmt.Errorf("%s.pub is not an SSH public key: %w", path, err)
		}
		return newIdentity(pk, comment, path), nil
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("%s is protected by a passphrase and has no %s.pub beside it: create it with ssh-keygen -y -f %s > %s.pub", path, path, path, path)
		}
		return nil, fmt.Errorf("%s is neither an SSH private key nor a public key: %w", path, err)
	}
	return newIdentity(signer.PublicKey(), "", path), nil
}

func newIdentity(pk ssh.PublicKey, comment, path string) *Identity {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	if comment != "" {
		line += " " + comment
	}
	return &Identity{PublicKey: line, Fingerprint: ssh.FingerprintSHA256(pk), Path: path}
}

// NewEd25519 generates an ed25519 key pair: the private key in OpenSSH PEM
// form and the public key as one authorized_keys line with comment.
func NewEd25519(comment string) (privatePEM []byte, publicLine string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	if comment != "" {
		line += " " + comment
	}
	return pem.EncodeToMemory(block), line, nil
}

// HostKey is an SSH host key as stored in the agent's Secret.
type HostKey struct {
	PrivatePEM []byte
	PublicLine string
}

// NewHostKey generates an ed25519 host key for the agent of workload name.
func NewHostKey(name string) (*HostKey, error) {
	priv, pub, err := NewEd25519("devagent@" + name)
	if err != nil {
		return nil, err
	}
	return &HostKey{PrivatePEM: priv, PublicLine: pub}, nil
}

// CheckHostKey parses a private host key and returns it as a signer; it is
// how the agent and devpatch decide whether a stored host key is usable.
func CheckHostKey(privatePEM []byte) (ssh.Signer, error) {
	if len(bytes.TrimSpace(privatePEM)) == 0 {
		return nil, errors.New("the host key is empty")
	}
	signer, err := ssh.ParsePrivateKey(privatePEM)
	if err != nil {
		return nil, fmt.Errorf("the host key cannot be parsed: %w", err)
	}
	return signer, nil
}
