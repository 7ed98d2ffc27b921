// Package inprocess runs a devagent's SSH server inside a test process and
// fakes the API server around it, so that the plugins' commands (devssh,
// devsync) run their whole Run, from argv to exit code, without a
// cluster: kubectl's test factory answers for the pod, its workload and
// the agent's Secret, and the commands' agentconn.Dialer is a pipe to the
// in-process server instead of a port-forward.
//
// The server is the agent's real one (pkg/sshserver) with the agent's own
// view (a shell in Dir); the e2e tests in test/e2e run the real thing on
// a real cluster.
package inprocess

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest/fake"
	cmdtesting "k8s.io/kubectl/pkg/cmd/testing"
	"k8s.io/kubectl/pkg/scheme"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// Namespace is where the fake objects live.
const Namespace = "ns"

// ContainerID is the app container's runtime ID in the pod's status.
var ContainerID = strings.Repeat("c", 64)

// Agent is an in-process agent and the objects of a patched Deployment
// "demo" whose one pod "demo-1" it serves.
type Agent struct {
	// Dir is the working directory of the agent-view shell.
	Dir string
	// Identity is the path of the user's private key (--identity).
	Identity string

	Pod        *corev1.Pod
	Deployment *appsv1.Deployment
	Secret     *corev1.Secret
	// Unpatched is a Deployment "plain" without the agent.
	Unpatched *appsv1.Deployment

	srv    *sshserver.Server
	ctx    context.Context
	mu     sync.Mutex
	conns  []net.Conn
	dialed int
}

// NewAgent starts the server; subsystems are extra SSH subsystems (devsync).
func NewAgent(t testing.TB, subsystems map[string]sshserver.SubsystemHandler) *Agent {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the agent's shell")
	}
	hk, err := keys.NewHostKey("demo")
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.ParsePrivateKey(hk.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	userPEM, userPub, err := keys.NewEd25519("test")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{Dir: t.TempDir()}
	a.Identity = filepath.Join(t.TempDir(), keys.PrivateKeyFile)
	if err := os.WriteFile(a.Identity, userPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	authorized, err := keys.ParseAuthorizedKeys([]byte(userPub + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	a.srv, err = sshserver.New(sshserver.Config{
		HostKey:        host,
		AuthorizedKeys: sshserver.StaticAuthorizedKeys(authorized),
		Launcher:       sshserver.LocalLauncher{Dir: a.Dir},
		Subsystems:     subsystems,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.ctx = ctx
	t.Cleanup(func() {
		cancel()
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, c := range a.conns {
			c.Close()
		}
	})
	a.objects(hk)
	return a
}

func (a *Agent) objects(hk *keys.HostKey) {
	annot := map[string]string{
		wire.AnnotationMode:           "root",
		wire.AnnotationTarget:         "app",
		wire.AnnotationAgentContainer: wire.DefaultAgentContainer,
	}
	labels := map[string]string{"app": "demo"}
	a.Deployment = &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: Namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annot}},
		},
	}
	a.Unpatched = &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: Namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "plain"}},
		},
	}
	a.Pod = &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo-1", Namespace: Namespace, UID: "uid-1", Labels: labels, Annotations: annot},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{
			Name:         wire.DefaultAgentContainer + "-keys",
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: wire.SecretName("demo")}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: true, ContainerID: "containerd://" + ContainerID, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			{Name: wire.DefaultAgentContainer, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		}},
	}
	a.Secret = &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: wire.SecretName("demo"), Namespace: Namespace},
		Data:       map[string][]byte{keys.HostPublicKeyFile: []byte(hk.PublicLine + "\n")},
	}
}

// DialPod implements agentconn.Dialer: a pipe to the in-process server.
func (a *Agent) DialPod(_ context.Context, namespace, pod string, port int) (net.Conn, error) {
	if namespace != Namespace || pod != a.Pod.Name || port != wire.Port {
		return nil, fmt.Errorf("inprocess: no agent at %s/%s:%d", namespace, pod, port)
	}
	c, s := net.Pipe()
	a.mu.Lock()
	a.conns = append(a.conns, c, s)
	a.dialed++
	a.mu.Unlock()
	go a.srv.ServeConn(a.ctx, s)
	return c, nil
}

// Dialed is how many streams were opened to the agent.
func (a *Agent) Dialed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dialed
}

// Factory is kubectl's test factory answering GET of the objects (and the
// pod list of the Deployment's selector) in Namespace.
func (a *Agent) Factory(t testing.TB) *cmdtesting.TestFactory {
	t.Helper()
	tf := cmdtesting.NewTestFactory().WithNamespace(Namespace)
	t.Cleanup(tf.Cleanup)
	codec := scheme.Codecs.LegacyCodec(scheme.Scheme.PrioritizedVersionsAllGroups()...)
	objs := map[string]runtime.Object{
		"pods/" + a.Pod.Name:               a.Pod,
		"deployments/" + a.Deployment.Name: a.Deployment,
		"deployments/" + a.Unpatched.Name:  a.Unpatched,
		"secrets/" + a.Secret.Name:         a.Secret,
	}
	tf.Client = &fake.RESTClient{
		GroupVersion:         schema.GroupVersion{Version: "v1"},
		NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		Client: fake.CreateHTTPClient(func(req *http.Request) (*http.Response, error) {
			if strings.HasSuffix(req.URL.Path, "/namespaces/"+Namespace) {
				// The builder checks the namespace of an object it did not find.
				return ok200(codec, &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: Namespace}}), nil
			}
			_, rest, ok := strings.Cut(req.URL.Path, "/namespaces/"+Namespace+"/")
			if !ok || req.Method != http.MethodGet {
				return status(codec, http.StatusNotFound, req.URL.Path), nil
			}
			if rest == "pods" {
				list := &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}}
				if sel := req.URL.Query().Get("labelSelector"); sel == "app=demo" {
					list.Items = append(list.Items, *a.Pod)
				}
				return ok200(codec, list), nil
			}
			if o, found := objs[rest]; found {
				return ok200(codec, o), nil
			}
			return status(codec, http.StatusNotFound, rest), nil
		}),
	}
	tf.ClientConfigVal = cmdtesting.DefaultClientConfig()
	return tf
}

// ok200 encodes a copy of o: the codec sets and restores the object's
// TypeMeta while it encodes, and requests come concurrently (devssh reads
// the Secret while it resolves the pod).
func ok200(codec runtime.Codec, o runtime.Object) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, o.DeepCopyObject())}
}

func status(codec runtime.Codec, code int, what string) *http.Response {
	resource, name, _ := strings.Cut(what, "/")
	st := &metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: metav1.StatusReasonNotFound,
		Message: fmt.Sprintf("%s %q not found", resource, name),
		Details: &metav1.StatusDetails{Name: name, Kind: resource},
	}
	return &http.Response{StatusCode: code, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, st)}
}
