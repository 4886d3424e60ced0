# PyTorch reference for `npm run bench -- torch`: VGG16 + the seed's head (random init), batch 8, on CPU.
# Prints one JSON line: seconds for one inference batch and one training step (8 convs frozen, Adam,
# binary cross-entropy), each after a warm-up. Uses Debian's python3-torch / python3-torchvision.
import json, sys, time
import torch
import torchvision

threads, batch, tags, hidden = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
features = torchvision.models.vgg16().features
head = torch.nn.Sequential(
    torch.nn.Flatten(), torch.nn.BatchNorm1d(512 * 7 * 7, eps=1e-3, momentum=0.01),
    torch.nn.Linear(512 * 7 * 7, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(hidden, tags))
model = torch.nn.Sequential(features, head)
convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
for conv in convs[:8]:
    for p in conv.parameters():
        p.requires_grad_(False)
x = torch.rand(batch, 3, 224, 224)
y = (torch.rand(batch, tags) < 0.01).float()

model.eval()
with torch.no_grad():
    torch.sigmoid(model(x))
    t = time.perf_counter()
    torch.sigmoid(model(x))
    infer = time.perf_counter() - t

model.train()
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
loss_fn = torch.nn.BCEWithLogitsLoss()
def step():
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
step()
t = time.perf_counter()
step()
train = time.perf_counter() - t
print(json.dumps({"infer_s": infer, "train_s": train, "torch": torch.__version__, "threads": torch.get_num_threads()}))
