# PyTorch reference for `npm run bench -- torch` and `-- tiny`: VGG16's conv stack (or the tiny widths)
# + the seed's head, random init, on CPU. Args: threads batch tags hidden [widths size freeze steps].
# Prints one JSON line: the median seconds of `steps` inference batches and `steps` training steps
# (the first `freeze` convs frozen, Adam, binary cross-entropy), each after two warm-up runs, and the
# first training step's seconds. Uses Debian's python3-torch.
import json, statistics, sys, time
import torch

threads, batch, tags, hidden = (int(a) for a in sys.argv[1:5])
widths = [int(w) for w in sys.argv[5].split(',')] if len(sys.argv) > 5 else [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
size = int(sys.argv[6]) if len(sys.argv) > 6 else 224
freeze = int(sys.argv[7]) if len(sys.argv) > 7 else 8
steps = int(sys.argv[8]) if len(sys.argv) > 8 else 1
torch.set_num_threads(threads)
torch.manual_seed(0)
layers, cin = [], 3
for i, w in enumerate(widths):  # torchvision's VGG16 `features`: conv 3x3 pad 1, ReLU, max-pool after 2, 4, 7, 10, 13
    layers += [torch.nn.Conv2d(cin, w, 3, padding=1), torch.nn.ReLU(inplace=True)]
    if i in (1, 3, 6, 9, 12):
        layers.append(torch.nn.MaxPool2d(2, 2))
    cin = w
features = torch.nn.Sequential(*layers)
flat = widths[-1] * (size // 32) ** 2
head = torch.nn.Sequential(
    torch.nn.Flatten(), torch.nn.BatchNorm1d(flat, eps=1e-3, momentum=0.01),
    torch.nn.Linear(flat, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(hidden, tags))
model = torch.nn.Sequential(features, head)
convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
for conv in convs[:freeze]:
    for p in conv.parameters():
        p.requires_grad_(False)
x = torch.rand(batch, 3, size, size)
y = (torch.rand(batch, tags) < 0.1).float()

def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t

model.eval()
with torch.no_grad():
    infer_once = lambda: torch.sigmoid(model(x))
    for _ in range(2):
        infer_once()
    infer = statistics.median(timed(infer_once) for _ in range(steps))

model.train()
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
loss_fn = torch.nn.BCEWithLogitsLoss()
def step():
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
first = timed(step)
step()
train = statistics.median(timed(step) for _ in range(steps))
print(json.dumps({"infer_s": infer, "train_s": train, "first_train_s": first, "torch": torch.__version__, "threads": torch.get_num_threads()}))
